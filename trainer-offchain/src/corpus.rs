//! A seeded, English-like text corpus for language-model tests and demos (this project has
//! no network access to download one): `trainchain-trainer corpus` and
//! `trainer-offchain/testdata/corpus.txt` (seed [`DEFAULT_SEED`], [`DEFAULT_BYTES`]).
//!
//! The text comes from a small probabilistic grammar over a vocabulary of ~400 words:
//! declarative sentences in the present (with subject/verb agreement: "the dog sees",
//! "the dogs see") or the past, copulas ("the gardens are quiet"), relative clauses,
//! prepositional phrases, adverbs, compound sentences joined by conjunctions, yes/no
//! questions ("Does the old farmer know the road?") and quoted speech. Words are picked with
//! a skewed (roughly Zipf-like) distribution; sentences form paragraphs of 3–7 separated by a
//! blank line. So there is structure at the character, word and sentence level. Only the
//! [`SplitMix64`] generator is used: the same seed gives the same bytes everywhere.

use crate::rng::SplitMix64;

/// Seed of the committed corpus.
pub const DEFAULT_SEED: u64 = 14;

/// Minimum size of the committed corpus (1 MiB; generation stops at the next paragraph end).
pub const DEFAULT_BYTES: usize = 1 << 20;

const NAMES: &[&str] = &[
	"Anna", "Ben", "Clara", "David", "Elena", "Felix", "Grace", "Hugo", "Iris", "James", "Kira",
	"Leo", "Maya", "Nora", "Oscar", "Paula", "Quinn", "Rosa", "Sam", "Tara", "Victor", "Wendy",
];

/// (singular, plural).
const NOUNS: &[(&str, &str)] = &[
	("dog", "dogs"),
	("cat", "cats"),
	("farmer", "farmers"),
	("child", "children"),
	("teacher", "teachers"),
	("bird", "birds"),
	("river", "rivers"),
	("house", "houses"),
	("garden", "gardens"),
	("city", "cities"),
	("road", "roads"),
	("tree", "trees"),
	("book", "books"),
	("letter", "letters"),
	("window", "windows"),
	("friend", "friends"),
	("woman", "women"),
	("man", "men"),
	("horse", "horses"),
	("mouse", "mice"),
	("boat", "boats"),
	("village", "villages"),
	("mountain", "mountains"),
	("door", "doors"),
	("king", "kings"),
	("queen", "queens"),
	("baker", "bakers"),
	("doctor", "doctors"),
	("student", "students"),
	("sailor", "sailors"),
	("story", "stories"),
	("song", "songs"),
	("apple", "apples"),
	("field", "fields"),
	("bridge", "bridges"),
	("lamp", "lamps"),
	("table", "tables"),
	("chair", "chairs"),
	("forest", "forests"),
	("stone", "stones"),
	("wolf", "wolves"),
	("fox", "foxes"),
	("box", "boxes"),
	("key", "keys"),
	("market", "markets"),
	("island", "islands"),
	("painter", "painters"),
	("clock", "clocks"),
	("neighbour", "neighbours"),
	("soldier", "soldiers"),
	("train", "trains"),
	("ship", "ships"),
	("cloud", "clouds"),
	("flower", "flowers"),
	("kitchen", "kitchens"),
	("school", "schools"),
	("guest", "guests"),
	("merchant", "merchants"),
	("shepherd", "shepherds"),
	("sheep", "sheep"),
	("machine", "machines"),
	("engineer", "engineers"),
	("map", "maps"),
	("lake", "lakes"),
	("hill", "hills"),
	("castle", "castles"),
	("owl", "owls"),
	("candle", "candles"),
	("coat", "coats"),
	("basket", "baskets"),
	("wall", "walls"),
	("street", "streets"),
	("poem", "poems"),
];

const ADJECTIVES: &[&str] = &[
	"old", "young", "small", "large", "quiet", "bright", "dark", "happy", "tired", "clever",
	"brave", "gentle", "green", "red", "blue", "white", "heavy", "strange", "careful", "busy",
	"cold", "warm", "narrow", "wide", "famous", "hungry", "silent", "golden", "ancient", "wooden",
	"patient", "curious", "proud", "lonely", "wild", "calm", "early", "distant", "simple",
	"honest", "sleepy", "little", "broken", "empty", "friendly", "loud", "soft",
];

/// Transitive verbs: (base, third person singular, past).
const TRANSITIVE: &[(&str, &str, &str)] = &[
	("see", "sees", "saw"),
	("find", "finds", "found"),
	("follow", "follows", "followed"),
	("help", "helps", "helped"),
	("carry", "carries", "carried"),
	("watch", "watches", "watched"),
	("open", "opens", "opened"),
	("paint", "paints", "painted"),
	("build", "builds", "built"),
	("visit", "visits", "visited"),
	("remember", "remembers", "remembered"),
	("like", "likes", "liked"),
	("know", "knows", "knew"),
	("take", "takes", "took"),
	("bring", "brings", "brought"),
	("read", "reads", "read"),
	("write", "writes", "wrote"),
	("call", "calls", "called"),
	("meet", "meets", "met"),
	("answer", "answers", "answered"),
	("clean", "cleans", "cleaned"),
	("hold", "holds", "held"),
	("lose", "loses", "lost"),
	("keep", "keeps", "kept"),
	("hear", "hears", "heard"),
	("teach", "teaches", "taught"),
	("push", "pushes", "pushed"),
	("catch", "catches", "caught"),
	("feed", "feeds", "fed"),
	("sell", "sells", "sold"),
	("buy", "buys", "bought"),
	("fix", "fixes", "fixed"),
	("draw", "draws", "drew"),
	("miss", "misses", "missed"),
	("greet", "greets", "greeted"),
];

/// Intransitive verbs: (base, third person singular, past).
const INTRANSITIVE: &[(&str, &str, &str)] = &[
	("sleep", "sleeps", "slept"),
	("run", "runs", "ran"),
	("wait", "waits", "waited"),
	("sing", "sings", "sang"),
	("laugh", "laughs", "laughed"),
	("work", "works", "worked"),
	("walk", "walks", "walked"),
	("rest", "rests", "rested"),
	("travel", "travels", "travelled"),
	("listen", "listens", "listened"),
	("arrive", "arrives", "arrived"),
	("smile", "smiles", "smiled"),
	("dance", "dances", "danced"),
	("swim", "swims", "swam"),
	("fly", "flies", "flew"),
	("stay", "stays", "stayed"),
	("return", "returns", "returned"),
	("shine", "shines", "shone"),
	("fall", "falls", "fell"),
	("grow", "grows", "grew"),
];

const ADVERBS: &[&str] = &[
	"slowly",
	"quickly",
	"quietly",
	"happily",
	"carefully",
	"often",
	"again",
	"together",
	"suddenly",
	"gladly",
	"softly",
	"early",
	"late",
	"alone",
	"well",
	"badly",
	"gently",
	"eagerly",
	"calmly",
	"proudly",
];

const PREPOSITIONS: &[&str] = &[
	"near", "behind", "under", "across", "beside", "inside", "over", "through", "around",
	"towards", "along", "past", "above", "below", "beyond",
];

const TIMES_PRESENT: &[&str] = &[
	"every morning",
	"in the evening",
	"at night",
	"on Sundays",
	"every day",
	"in winter",
	"in the spring",
	"most days",
	"now",
	"today",
];

const TIMES_PAST: &[&str] = &[
	"yesterday",
	"last night",
	"long ago",
	"that morning",
	"in the summer",
	"once",
	"last week",
	"after the rain",
	"before dawn",
	"at noon",
];

const CONJUNCTIONS: &[&str] = &["and", "but", "because", "while", "although", "so", "when"];

const SPEECH_VERBS: &[&str] = &["said", "asked", "whispered", "replied", "shouted", "called"];

/// A skewed pick of an index `< n`: low indices are more frequent (roughly Zipf-like).
fn skewed(rng: &mut SplitMix64, n: usize) -> usize {
	let k = rng.below(n) + 1;
	rng.below(k)
}

fn pick<'a>(rng: &mut SplitMix64, words: &[&'a str]) -> &'a str {
	words.get(skewed(rng, words.len())).copied().unwrap_or("")
}

#[derive(Clone, Copy, PartialEq)]
enum Tense {
	Present,
	Past,
}

/// A noun phrase; returns (text, plural).
fn noun_phrase(rng: &mut SplitMix64, depth: u32) -> (String, bool) {
	if rng.below(6) == 0 {
		return (pick(rng, NAMES).to_string(), false);
	}
	let (sing, plur) = NOUNS.get(skewed(rng, NOUNS.len())).copied().unwrap_or(("dog", "dogs"));
	let plural = rng.below(3) == 0;
	let det = match (plural, rng.below(4)) {
		(false, 0) => "a",
		(false, 1) => "this",
		(false, 2) => "my",
		(true, 0) => "some",
		(true, 1) => "these",
		(true, 2) => "our",
		_ => "the",
	};
	let mut s = det.to_string();
	if rng.below(5) < 2 {
		s.push(' ');
		s.push_str(pick(rng, ADJECTIVES));
	}
	s.push(' ');
	s.push_str(if plural { plur } else { sing });
	if det == "a" && s.get(2..3).is_some_and(|c| "aeiou".contains(c)) {
		s.insert(1, 'n');
	}
	if depth == 0 && rng.below(7) == 0 {
		let tense = if rng.below(2) == 0 { Tense::Present } else { Tense::Past };
		s.push_str(" that ");
		s.push_str(&verb_phrase(rng, plural, tense, depth + 1));
	}
	(s, plural)
}

fn conjugate(v: (&str, &str, &str), plural: bool, tense: Tense) -> String {
	match (tense, plural) {
		(Tense::Past, _) => v.2.to_string(),
		(Tense::Present, false) => v.1.to_string(),
		(Tense::Present, true) => v.0.to_string(),
	}
}

/// A verb phrase agreeing with a subject of number `plural`.
fn verb_phrase(rng: &mut SplitMix64, plural: bool, tense: Tense, depth: u32) -> String {
	match rng.below(5) {
		0 => {
			let be = match (tense, plural) {
				(Tense::Present, false) => "is",
				(Tense::Present, true) => "are",
				(Tense::Past, false) => "was",
				(Tense::Past, true) => "were",
			};
			format!("{be} {}", pick(rng, ADJECTIVES))
		},
		1 | 2 => {
			let v = TRANSITIVE
				.get(skewed(rng, TRANSITIVE.len()))
				.copied()
				.unwrap_or(("see", "sees", "saw"));
			let (obj, _) = noun_phrase(rng, depth + 1);
			format!("{} {obj}", conjugate(v, plural, tense))
		},
		_ => {
			let v = INTRANSITIVE
				.get(skewed(rng, INTRANSITIVE.len()))
				.copied()
				.unwrap_or(("run", "runs", "ran"));
			let mut s = conjugate(v, plural, tense);
			if rng.below(2) == 0 {
				s.push(' ');
				s.push_str(pick(rng, ADVERBS));
			}
			s
		},
	}
}

/// A clause: subject, verb phrase, optional place and time.
fn clause(rng: &mut SplitMix64, tense: Tense) -> String {
	let (subj, plural) = noun_phrase(rng, 0);
	let mut s = format!("{subj} {}", verb_phrase(rng, plural, tense, 0));
	if rng.below(3) == 0 {
		let (place, _) = noun_phrase(rng, 1);
		s.push_str(&format!(" {} {place}", pick(rng, PREPOSITIONS)));
	}
	if rng.below(4) == 0 {
		let times = if tense == Tense::Past { TIMES_PAST } else { TIMES_PRESENT };
		s.push(' ');
		s.push_str(pick(rng, times));
	}
	s
}

fn capitalise(s: &str) -> String {
	let mut c = s.chars();
	match c.next() {
		Some(f) => f.to_uppercase().chain(c).collect(),
		None => String::new(),
	}
}

/// A yes/no question: "Does the dog see the cat?", "Did the children sleep?".
fn question(rng: &mut SplitMix64) -> String {
	let (subj, plural) = noun_phrase(rng, 1);
	let past = rng.below(3) == 0;
	let aux = match (past, plural) {
		(true, _) => "Did",
		(false, false) => "Does",
		(false, true) => "Do",
	};
	let rest = if rng.below(2) == 0 {
		let v = TRANSITIVE
			.get(skewed(rng, TRANSITIVE.len()))
			.copied()
			.unwrap_or(("see", "", ""));
		format!("{} {}", v.0, noun_phrase(rng, 1).0)
	} else {
		let v = INTRANSITIVE
			.get(skewed(rng, INTRANSITIVE.len()))
			.copied()
			.unwrap_or(("run", "", ""));
		v.0.to_string()
	};
	format!("{aux} {subj} {rest}?")
}

/// One sentence (with its final punctuation).
fn sentence(rng: &mut SplitMix64, tense: Tense) -> String {
	match rng.below(10) {
		0 => question(rng),
		1 => {
			let inner = capitalise(&clause(rng, Tense::Present));
			let who = pick(rng, NAMES);
			format!("\"{inner},\" {} {who}.", pick(rng, SPEECH_VERBS))
		},
		2 | 3 => {
			let a = clause(rng, tense);
			let b = clause(rng, tense);
			format!("{}, {} {b}.", capitalise(&a), pick(rng, CONJUNCTIONS))
		},
		_ => format!("{}.", capitalise(&clause(rng, tense))),
	}
}

/// Generate at least `min_bytes` bytes of text from `seed` (whole paragraphs, each ending
/// with a newline, separated by a blank line). Same seed, same bytes.
pub fn generate(seed: u64, min_bytes: usize) -> String {
	let mut rng = SplitMix64::derive(seed, &[0xC0_4905]);
	let mut out = String::with_capacity(min_bytes.saturating_add(1024));
	while out.len() < min_bytes {
		if !out.is_empty() {
			out.push('\n');
		}
		let tense = if rng.below(2) == 0 { Tense::Present } else { Tense::Past };
		let n = 3 + rng.below(5);
		let sentences: Vec<String> = (0..n).map(|_| sentence(&mut rng, tense)).collect();
		out.push_str(&sentences.join(" "));
		out.push('\n');
	}
	out
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn generation_is_seeded_and_has_agreement() {
		let a = generate(1, 20_000);
		assert_eq!(a, generate(1, 20_000));
		assert_ne!(a, generate(2, 20_000));
		assert!(a.len() >= 20_000 && a.is_ascii());
		assert!(a.contains("\n\n") && a.contains('?') && a.contains('"'));
		assert!(a.contains(" sees ") && a.contains(" see ") && a.contains(" saw "));
		let mut words: Vec<&str> =
			a.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()).collect();
		words.sort_unstable();
		words.dedup();
		assert!(words.len() >= 300, "{} distinct words", words.len());
	}
}
