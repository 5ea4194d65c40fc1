//! `exp` for the fused kernels: pure f32 arithmetic the compiler can inline and vectorise
//! (libm's `expf` is a call per element: a tenth of a transformer step in `perf`).
//!
//! `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, `e^r` by its Taylor polynomial of degree 7
//! (truncation error below `(ln 2/2)^8/8! ≈ 5·10⁻⁹`), times `2^n` built from its bits. The
//! argument is clamped to `[−88, 88]`: below, the result is exactly 0 (e⁻⁸⁸ ≈ 6·10⁻³⁹ is
//! subnormal anyway); above, it is e⁸⁸ ≈ 1.65·10³⁸ instead of overflowing, which the
//! kernels here only feed into `1 − 2/(e^{2u} + 1)` (= 1 either way) or never reach (softmax
//! arguments are ≤ 0). NaN stays NaN. The same bits on every machine: no libm, no fused
//! multiply-add unless written.

/// Whether the CPU has AVX2, for the kernels that have an AVX2 build of their loops (eight
/// lanes instead of SSE2's four). They enable AVX2 only, not FMA: every element goes through
/// the same IEEE operations in the same order, so the bits are the plain loops' (each such
/// kernel tests it) and machines with and without AVX2 agree. `std` caches the answer.
pub fn has_avx2() -> bool {
	#[cfg(target_arch = "x86_64")]
	{
		std::arch::is_x86_feature_detected!("avx2")
	}
	#[cfg(not(target_arch = "x86_64"))]
	{
		false
	}
}

/// 1.5·2²³: adding and subtracting it rounds to the nearest integer.
const ROUND: f32 = 12_582_912.0;

/// `x` clamped to `[−88, 88]`, `ROUND + n` (n the nearest integer to x·log₂e, |n| ≤ 127),
/// and `e^r` for `r = x − n·ln 2` (the Taylor polynomial of the module docs).
#[inline(always)]
fn reduced(x: f32) -> (f32, f32) {
	const LOG2_E: f32 = std::f32::consts::LOG2_E;
	// ln 2 split so that n·LN2_HI is exact for |n| ≤ 128.
	const LN2_HI: f32 = 0.693_359_4;
	const LN2_LO: f32 = -2.121_944_4e-4;
	let x = x.clamp(-88.0, 88.0);
	let shifted = x * LOG2_E + ROUND;
	let n = shifted - ROUND;
	let r = (x - n * LN2_HI) - n * LN2_LO;
	let p = 1.0
		+ r * (1.0
			+ r * (0.5
				+ r * (1.0 / 6.0
					+ r * (1.0 / 24.0
						+ r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
	(shifted, p)
}

/// `e^x` (see the module docs for the range).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
	const ROUND_BITS: i32 = 0x4B40_0000;
	let (shifted, p) = reduced(x);
	// 2^n for n in [−127, 127]; n = −127 gives the bits of +0. n is read from the low bits of
	// `shifted` (all of [ROUND − 127, ROUND + 127] share ROUND's exponent, one unit per step)
	// rather than by `n as i32`: Rust's saturating float-to-int conversion is done one lane
	// at a time, which kept the kernels' loops from vectorising.
	let n_bits = (shifted.to_bits() as i32).wrapping_sub(ROUND_BITS);
	let two_n = f32::from_bits((n_bits.wrapping_add(127).max(0) as u32) << 23);
	p * two_n
}

#[cfg(test)]
mod tests {
	use super::*;

	/// The previous formulation (`n as i32`), kept to check that reading `n` from the bits
	/// changes no result.
	fn exp_with_a_cast(x: f32) -> f32 {
		let (shifted, p) = reduced(x);
		let n = shifted - ROUND;
		p * f32::from_bits(((n as i32 + 127).max(0) as u32) << 23)
	}

	#[test]
	fn reading_n_from_the_bits_gives_the_cast_s_results() {
		assert_eq!(f32::to_bits(12_582_912.0), 0x4B40_0000);
		let mut xs = vec![-1e30, -100.0, -88.0, -87.999, 87.999, 88.0, 100.0, 1e30, 0.0, -0.0];
		xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, -f32::MIN_POSITIVE]);
		let mut x = -90.0f32;
		while x < 90.0 {
			xs.push(x);
			x += 0.000_37;
		}
		for x in xs {
			assert_eq!(exp(x).to_bits(), exp_with_a_cast(x).to_bits(), "e^{x}");
		}
		assert!(exp(f32::NAN).is_nan());
	}

	#[test]
	fn exp_is_within_a_few_ulp_of_libm_and_handles_the_edges() {
		let mut worst = 0f64;
		let mut x = -87.0f32;
		while x < 87.0 {
			let want = f64::from(x).exp();
			let rel = ((f64::from(exp(x)) - want) / want).abs();
			worst = worst.max(rel);
			x += 0.013_7;
		}
		assert!(worst < 4e-7, "worst relative error {worst:e}");
		assert_eq!(exp(0.0), 1.0);
		assert_eq!(exp(-100.0), 0.0);
		assert_eq!(exp(f32::NEG_INFINITY), 0.0);
		assert!(exp(100.0).is_finite() && exp(100.0) > 1e38);
		assert!(exp(f32::NAN).is_nan());
	}
}
