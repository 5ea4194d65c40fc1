//! Data sets: CSV, IDX and text loaders, a seeded synthetic generator, and reproducible
//! sharding.
//!
//! A [`Dataset`] is a dense row-major `f32` feature matrix with one `u32` class label per
//! row. Nothing here downloads anything: the caller passes file paths.
//!
//! A language-modelling set ([`text_dataset`], [`load_text`]) is byte-level (vocabulary 256,
//! token id = byte value): each row holds `context + 1` consecutive bytes of the text as f32
//! token ids, and its label is the last of them. A `gpt` model reads the first `context`
//! and is scored on predicting tokens `1..=context` (see
//! [`crate::model::Model::batch_loss`]), so batching, sharding and subsets work unchanged.

use std::fs;
use std::path::Path;

use crate::error::{Result, TrainerError};
use crate::model::ModelSpec;
use crate::rng::SplitMix64;

/// Features (row-major, `len × n_features`) and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
	/// Human-readable origin (file name, "synthetic", "shard 2 of ..."), used in errors.
	pub name: String,
	n_features: usize,
	features: Vec<f32>,
	labels: Vec<u32>,
}

impl Dataset {
	/// Build from parts; checks `features.len() == labels.len() * n_features` and that all
	/// features are finite.
	pub fn new(
		name: impl Into<String>,
		n_features: usize,
		features: Vec<f32>,
		labels: Vec<u32>,
	) -> Result<Self> {
		let name = name.into();
		if n_features == 0 {
			return Err(TrainerError::Config(format!("{name}: zero features")));
		}
		if features.len() != labels.len().saturating_mul(n_features) {
			return Err(TrainerError::mismatch(
				format!("{name}: feature buffer length ({} rows x {n_features})", labels.len()),
				labels.len().saturating_mul(n_features),
				features.len(),
			));
		}
		crate::update::check_finite(&format!("{name}: features"), &features)?;
		Ok(Self { name, n_features, features, labels })
	}

	/// Number of samples.
	pub fn len(&self) -> usize {
		self.labels.len()
	}

	/// True when there are no samples.
	pub fn is_empty(&self) -> bool {
		self.labels.is_empty()
	}

	/// Number of features per sample.
	pub fn n_features(&self) -> usize {
		self.n_features
	}

	/// Row-major features.
	pub fn features(&self) -> &[f32] {
		&self.features
	}

	/// Labels.
	pub fn labels(&self) -> &[u32] {
		&self.labels
	}

	/// Features of sample `i` (empty if out of range).
	pub fn row(&self, i: usize) -> &[f32] {
		let start = i.saturating_mul(self.n_features);
		self.features
			.get(start..start.saturating_add(self.n_features))
			.unwrap_or_default()
	}

	/// `max label + 1` (0 for an empty set).
	pub fn num_classes(&self) -> usize {
		self.labels.iter().max().map_or(0, |m| *m as usize + 1)
	}

	/// The samples at `indices` (in that order); out-of-range indices are an error.
	pub fn subset(&self, name: impl Into<String>, indices: &[usize]) -> Result<Self> {
		let mut features = Vec::with_capacity(indices.len().saturating_mul(self.n_features));
		let mut labels = Vec::with_capacity(indices.len());
		for &i in indices {
			let label = *self.labels.get(i).ok_or_else(|| {
				TrainerError::mismatch(format!("{}: sample index", self.name), self.len(), i)
			})?;
			features.extend_from_slice(self.row(i));
			labels.push(label);
		}
		Ok(Self { name: name.into(), n_features: self.n_features, features, labels })
	}

	/// Split into the first `n` samples and the rest.
	pub fn split_at(&self, n: usize) -> Result<(Self, Self)> {
		let n = n.min(self.len());
		let a: Vec<usize> = (0..n).collect();
		let b: Vec<usize> = (n..self.len()).collect();
		Ok((
			self.subset(format!("{}[..{n}]", self.name), &a)?,
			self.subset(format!("{}[{n}..]", self.name), &b)?,
		))
	}

	/// Check that the data fits a model: same feature count, every label a class of the model.
	pub fn check_compatible(&self, spec: &ModelSpec) -> Result<()> {
		if self.n_features != spec.in_features() {
			return Err(TrainerError::mismatch(
				format!("{}: feature count vs model {spec}", self.name),
				spec.in_features(),
				self.n_features,
			));
		}
		let classes = spec.classes();
		if spec.is_lm() {
			if let Some((k, &v)) = self
				.features
				.iter()
				.enumerate()
				.find(|(_, v)| !(v.fract() == 0.0 && **v >= 0.0 && (**v as usize) < classes))
			{
				return Err(TrainerError::Config(format!(
					"{} sample {}: {v} is not a token id of model {spec} (0..{classes})",
					self.name,
					k / self.n_features.max(1)
				)));
			}
		}
		if let Some((i, &label)) =
			self.labels.iter().enumerate().find(|(_, l)| **l as usize >= classes)
		{
			return Err(TrainerError::LabelOutOfRange {
				context: format!("{} sample {i}", self.name),
				label,
				classes,
			});
		}
		Ok(())
	}

	/// Per-class counts (length `num_classes()`).
	pub fn class_counts(&self) -> Vec<usize> {
		let mut c = vec![0usize; self.num_classes()];
		for &l in &self.labels {
			if let Some(x) = c.get_mut(l as usize) {
				*x += 1;
			}
		}
		c
	}
}

/// Where the label is in a CSV row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LabelColumn {
	/// The last column (default).
	#[default]
	Last,
	/// The first column.
	First,
	/// Column `i` (0-based).
	Index(usize),
}

/// Whether a CSV file has a header row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Header {
	/// A header iff the first row has a non-numeric field (default).
	#[default]
	Auto,
	/// The first row is a header.
	Yes,
	/// No header.
	No,
}

/// CSV loader options.
#[derive(Clone, Copy, Debug, Default)]
pub struct CsvOptions {
	/// Label column.
	pub label: LabelColumn,
	/// Header handling.
	pub header: Header,
}

/// Load a CSV file of numeric features plus an integer label column (comma-separated,
/// no quoting; blank lines are skipped). Errors name the file and the 1-based line.
pub fn load_csv(path: impl AsRef<Path>, opts: CsvOptions) -> Result<Dataset> {
	let path = path.as_ref();
	let text = fs::read_to_string(path).map_err(|e| TrainerError::io(path, e))?;
	parse_csv(&text, path, opts)
}

/// Parse CSV text (see [`load_csv`]); `path` is only used in error messages.
pub fn parse_csv(text: &str, path: &Path, opts: CsvOptions) -> Result<Dataset> {
	let err = |line: usize, msg: String| TrainerError::Csv { path: path.to_path_buf(), line, msg };
	let mut width: Option<usize> = None;
	let mut label_idx = 0usize;
	let mut features = Vec::new();
	let mut labels = Vec::new();
	let mut first_row = true;
	for (lineno, raw) in text.lines().enumerate() {
		let line_no = lineno + 1;
		let line = raw.trim();
		if line.is_empty() {
			continue;
		}
		let fields: Vec<&str> = line.split(',').map(str::trim).collect();
		if first_row {
			first_row = false;
			let is_header = match opts.header {
				Header::Yes => true,
				Header::No => false,
				Header::Auto => fields.iter().any(|f| f.parse::<f64>().is_err()),
			};
			if fields.len() < 2 {
				return Err(err(
					line_no,
					format!("{} column(s): need at least one feature and a label", fields.len()),
				));
			}
			width = Some(fields.len());
			label_idx = match opts.label {
				LabelColumn::Last => fields.len() - 1,
				LabelColumn::First => 0,
				LabelColumn::Index(i) if i < fields.len() => i,
				LabelColumn::Index(i) => {
					return Err(err(
						line_no,
						format!("label column {i} does not exist ({} columns)", fields.len()),
					))
				},
			};
			if is_header {
				continue;
			}
		}
		let w = width.unwrap_or(fields.len());
		if fields.len() != w {
			return Err(err(line_no, format!("ragged row: {} fields, expected {w}", fields.len())));
		}
		for (col, f) in fields.iter().enumerate() {
			if col == label_idx {
				let label: u32 = f.parse().map_err(|_| {
					err(
						line_no,
						format!("column {}: label {f:?} is not a non-negative integer", col + 1),
					)
				})?;
				labels.push(label);
			} else {
				let v: f32 = f.parse().map_err(|_| {
					err(line_no, format!("column {}: {f:?} is not a number", col + 1))
				})?;
				if !v.is_finite() {
					return Err(err(line_no, format!("column {}: {f:?} is not finite", col + 1)));
				}
				features.push(v);
			}
		}
	}
	let Some(w) = width else {
		return Err(err(0, "no data rows".into()));
	};
	if labels.is_empty() {
		return Err(err(0, "no data rows".into()));
	}
	let name = path.display().to_string();
	Dataset::new(name, w - 1, features, labels)
}

fn read_be_u32(bytes: &[u8], at: usize) -> Option<u32> {
	let b = bytes.get(at..at + 4)?;
	Some(u32::from_be_bytes([*b.first()?, *b.get(1)?, *b.get(2)?, *b.get(3)?]))
}

/// Load an IDX pair (MNIST / Fashion-MNIST format, uncompressed): an unsigned-byte image
/// file (magic `0x00000803`, dims `n × rows × cols`) and a label file (magic `0x00000801`).
/// Pixels are scaled to `[0, 1]`.
pub fn load_idx(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Dataset> {
	let (ipath, lpath) = (images.as_ref(), labels.as_ref());
	let ibytes = fs::read(ipath).map_err(|e| TrainerError::io(ipath, e))?;
	let lbytes = fs::read(lpath).map_err(|e| TrainerError::io(lpath, e))?;
	let ierr = |msg: String| TrainerError::Idx { path: ipath.to_path_buf(), msg };
	let lerr = |msg: String| TrainerError::Idx { path: lpath.to_path_buf(), msg };
	if ibytes.starts_with(&[0x1f, 0x8b]) || lbytes.starts_with(&[0x1f, 0x8b]) {
		return Err(ierr("file is gzip-compressed; gunzip it first".into()));
	}
	let imagic =
		read_be_u32(&ibytes, 0).ok_or_else(|| ierr("shorter than the IDX header".into()))?;
	if imagic != 0x0803 {
		return Err(ierr(format!("magic {imagic:#010x}, expected 0x00000803 (u8 images, 3 dims)")));
	}
	let (n, rows, cols) =
		match (read_be_u32(&ibytes, 4), read_be_u32(&ibytes, 8), read_be_u32(&ibytes, 12)) {
			(Some(n), Some(r), Some(c)) => (n as usize, r as usize, c as usize),
			_ => return Err(ierr("shorter than the IDX header".into())),
		};
	let per = rows.saturating_mul(cols);
	let need = n.saturating_mul(per).saturating_add(16);
	if ibytes.len() != need {
		return Err(ierr(format!(
			"{n} images of {rows}x{cols} need {need} bytes, file has {}",
			ibytes.len()
		)));
	}
	let lmagic =
		read_be_u32(&lbytes, 0).ok_or_else(|| lerr("shorter than the IDX header".into()))?;
	if lmagic != 0x0801 {
		return Err(lerr(format!("magic {lmagic:#010x}, expected 0x00000801 (u8 labels, 1 dim)")));
	}
	let ln =
		read_be_u32(&lbytes, 4).ok_or_else(|| lerr("shorter than the IDX header".into()))? as usize;
	if ln != n {
		return Err(lerr(format!("{ln} labels but {} has {n} images", ipath.display())));
	}
	if lbytes.len() != n.saturating_add(8) {
		return Err(lerr(format!(
			"{n} labels need {} bytes, file has {}",
			n.saturating_add(8),
			lbytes.len()
		)));
	}
	let features: Vec<f32> = ibytes
		.get(16..)
		.unwrap_or_default()
		.iter()
		.map(|&p| f32::from(p) / 255.0)
		.collect();
	let labels: Vec<u32> =
		lbytes.get(8..).unwrap_or_default().iter().map(|&l| u32::from(l)).collect();
	if per == 0 {
		return Err(ierr("images have zero pixels".into()));
	}
	Dataset::new(ipath.display().to_string(), per, features, labels)
}

/// Byte-level language-modelling rows of `text` (see the module docs): row `k` holds bytes
/// `k·stride ..= k·stride + context` as token ids, label the last one. Errors when `context`
/// or `stride` is 0 or the text is shorter than `context + 1` bytes.
pub fn text_dataset(
	name: impl Into<String>,
	text: &[u8],
	context: usize,
	stride: usize,
) -> Result<Dataset> {
	let name = name.into();
	if context == 0 || stride == 0 {
		return Err(TrainerError::Config(format!("{name}: context and stride must be positive")));
	}
	let width = context.saturating_add(1);
	if text.len() < width {
		return Err(TrainerError::Config(format!(
			"{name}: {} bytes of text are fewer than one row of {width} (context {context} + 1)",
			text.len()
		)));
	}
	let rows = (text.len() - width) / stride + 1;
	let mut features = Vec::with_capacity(rows.saturating_mul(width));
	let mut labels = Vec::with_capacity(rows);
	for k in 0..rows {
		let row = text.get(k * stride..k * stride + width).unwrap_or_default();
		features.extend(row.iter().map(|&b| f32::from(b)));
		labels.push(u32::from(row.last().copied().unwrap_or(0)));
	}
	Dataset::new(name, width, features, labels)
}

/// Fraction of a text held out as its test split by [`load_text_split`] (the end).
pub const TEXT_TEST_FRACTION: f64 = 0.1;

/// Load a text file as a byte-level language-modelling set (see [`text_dataset`]).
pub fn load_text(path: impl AsRef<Path>, context: usize, stride: usize) -> Result<Dataset> {
	let path = path.as_ref();
	let bytes = fs::read(path).map_err(|e| TrainerError::io(path, e))?;
	text_dataset(path.display().to_string(), &bytes, context, stride)
}

/// Load a text file and hold out its last [`TEXT_TEST_FRACTION`] (10%) of bytes: returns
/// (rows of the first 90%, rows of the last 10%); no row spans the cut.
pub fn load_text_split(
	path: impl AsRef<Path>,
	context: usize,
	stride: usize,
) -> Result<(Dataset, Dataset)> {
	let path = path.as_ref();
	let bytes = fs::read(path).map_err(|e| TrainerError::io(path, e))?;
	let cut = bytes.len() - (bytes.len() as f64 * TEXT_TEST_FRACTION) as usize;
	let (head, tail) = bytes.split_at(cut);
	let name = path.display().to_string();
	Ok((
		text_dataset(format!("{name}[..90%]"), head, context, stride)?,
		text_dataset(format!("{name}[90%..]"), tail, context, stride)?,
	))
}

/// Seeded Gaussian blobs: `n` samples, `features` dims, `classes` classes. Class `k` has a
/// random centre in `[-1, 1]^features` scaled by `separation`; samples add unit-variance
/// noise scaled by `spread`. Bit-identical everywhere for a given seed.
pub fn gaussian_blobs(
	n: usize,
	features: usize,
	classes: usize,
	separation: f32,
	spread: f32,
	seed: u64,
) -> Result<Dataset> {
	if features == 0 || classes == 0 {
		return Err(TrainerError::Config(
			"gaussian_blobs needs features > 0 and classes > 0".into(),
		));
	}
	let mut crng = SplitMix64::derive(seed, &[0]);
	let centres: Vec<f32> =
		(0..classes * features).map(|_| crng.uniform(1.0) * separation).collect();
	let mut rng = SplitMix64::derive(seed, &[1]);
	let mut xs = Vec::with_capacity(n.saturating_mul(features));
	let mut ys = Vec::with_capacity(n);
	for i in 0..n {
		let k = i % classes;
		ys.push(k as u32);
		let c = centres.get(k * features..(k + 1) * features).unwrap_or_default();
		for &cj in c {
			xs.push(cj + spread * rng.normal());
		}
	}
	// Shuffle rows so classes are interleaved unpredictably.
	let mut order: Vec<usize> = (0..n).collect();
	SplitMix64::derive(seed, &[2]).shuffle(&mut order);
	let d = Dataset::new("synthetic", features, xs, ys)?;
	d.subset(format!("blobs(n={n},f={features},c={classes},seed={seed})"), &order)
}

/// IID sharding: shuffle with `seed`, deal into `n` shards of (almost) equal size.
pub fn shard_iid(data: &Dataset, n: usize, seed: u64) -> Result<Vec<Dataset>> {
	if n == 0 || n > data.len() {
		return Err(TrainerError::Config(format!(
			"cannot split {} samples into {n} shards",
			data.len()
		)));
	}
	let mut order: Vec<usize> = (0..data.len()).collect();
	SplitMix64::derive(seed, &[0x11D]).shuffle(&mut order);
	let mut shards = Vec::with_capacity(n);
	for s in 0..n {
		let idx: Vec<usize> = order.iter().copied().skip(s).step_by(n).collect();
		shards.push(data.subset(format!("{} iid shard {s}/{n}", data.name), &idx)?);
	}
	Ok(shards)
}

/// Label-skewed non-IID sharding (McMahan et al.): sort samples by label (ties in a seeded
/// random order), cut into `n · pieces_per_shard` contiguous pieces, and give each shard
/// `pieces_per_shard` pieces chosen by a seeded permutation. With 2 pieces per shard most
/// shards see only ~2 classes.
pub fn shard_label_skew(
	data: &Dataset,
	n: usize,
	pieces_per_shard: usize,
	seed: u64,
) -> Result<Vec<Dataset>> {
	let pieces = n.saturating_mul(pieces_per_shard);
	if n == 0 || pieces_per_shard == 0 || pieces > data.len() {
		return Err(TrainerError::Config(format!(
			"cannot split {} samples into {n} shards of {pieces_per_shard} pieces",
			data.len()
		)));
	}
	let mut order: Vec<usize> = (0..data.len()).collect();
	SplitMix64::derive(seed, &[0x5CE, 0]).shuffle(&mut order);
	order.sort_by_key(|&i| data.labels().get(i).copied().unwrap_or(0)); // stable: keeps shuffled ties
	let mut piece_ids: Vec<usize> = (0..pieces).collect();
	SplitMix64::derive(seed, &[0x5CE, 1]).shuffle(&mut piece_ids);
	let len = data.len();
	let mut shards = Vec::with_capacity(n);
	for s in 0..n {
		let mut idx = Vec::new();
		for &p in piece_ids.iter().skip(s * pieces_per_shard).take(pieces_per_shard) {
			let (a, b) = (p * len / pieces, (p + 1) * len / pieces);
			idx.extend_from_slice(order.get(a..b).unwrap_or_default());
		}
		shards.push(data.subset(format!("{} label-skew shard {s}/{n}", data.name), &idx)?);
	}
	Ok(shards)
}
