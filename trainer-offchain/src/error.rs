//! Error type of the trainer library.

use std::path::PathBuf;

/// Result alias used throughout the library.
pub type Result<T, E = TrainerError> = std::result::Result<T, E>;

/// Everything that can go wrong in the trainer library.
///
/// Errors about user input name the file (and line/column where it applies) or the
/// mismatching sizes, so the CLI can print them as they are.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
	/// A file could not be opened, read or written.
	#[error("{}: {source}", path.display())]
	Io {
		/// The file.
		path: PathBuf,
		/// The underlying error.
		#[source]
		source: std::io::Error,
	},
	/// A CSV file is malformed (ragged row, non-numeric value, bad label...).
	#[error("{}:{line}: {msg}", path.display())]
	Csv {
		/// The file.
		path: PathBuf,
		/// 1-based line number.
		line: usize,
		/// What is wrong.
		msg: String,
	},
	/// An IDX file is malformed.
	#[error("{}: {msg}", path.display())]
	Idx {
		/// The file.
		path: PathBuf,
		/// What is wrong.
		msg: String,
	},
	/// A label is not a class of the model.
	#[error("{context}: label {label} is outside the model's {classes} classes (0..{classes})")]
	LabelOutOfRange {
		/// Where the label came from (data set name and sample index).
		context: String,
		/// The label.
		label: u32,
		/// Number of classes of the model.
		classes: usize,
	},
	/// Sizes that must agree do not (feature counts, parameter counts, shapes).
	#[error("{what}: expected {expected}, found {found}")]
	Mismatch {
		/// What was being compared.
		what: String,
		/// The expected size.
		expected: usize,
		/// The size found.
		found: usize,
	},
	/// An update or parameter vector contains NaN or an infinity.
	#[error("{what}: value #{index} is not finite ({value})")]
	NonFinite {
		/// What was being checked.
		what: String,
		/// Index of the first bad value.
		index: usize,
		/// The bad value.
		value: f32,
	},
	/// Bytes that should hold a canonical encoding do not.
	#[error("invalid {what} encoding: {msg}")]
	Decode {
		/// What was being decoded.
		what: &'static str,
		/// What is wrong.
		msg: String,
	},
	/// A model spec string or value is invalid.
	#[error("invalid model spec {spec:?}: {msg}")]
	Spec {
		/// The spec as given.
		spec: String,
		/// What is wrong.
		msg: String,
	},
	/// A checkpoint file does not fit the model.
	#[error("checkpoint {}: {msg}", path.display())]
	Checkpoint {
		/// The file.
		path: PathBuf,
		/// What is wrong.
		msg: String,
	},
	/// A training/evaluation configuration is invalid (zero batch size, empty data set...).
	#[error("invalid configuration: {0}")]
	Config(String),
	/// Training diverged (loss became NaN or infinite).
	#[error(
		"training diverged: loss is {loss} at step {step} (likely causes: a learning rate too \
		 high for the data, or unscaled features)"
	)]
	Diverged {
		/// The loss.
		loss: f32,
		/// The step.
		step: usize,
	},
	/// Training finished but its loss did not fall (see [`crate::convergence`]).
	#[error(
		"training did not converge: epoch {epoch}'s training loss {loss:.4} is not 1% below both \
		 the initial model's {initial:.4} and {entropy:.4} (always guessing the class \
		 frequencies) (likely causes: a learning rate too high for the data, or unscaled \
		 features)"
	)]
	NotLearning {
		/// Mean training loss of the last epoch.
		loss: f32,
		/// That epoch (1-based).
		epoch: usize,
		/// Loss of the initial model on the training data.
		initial: f32,
		/// Entropy of the training labels.
		entropy: f32,
	},
	/// An error from candle.
	#[error("tensor error: {0}")]
	Candle(#[from] candle_core::Error),
}

impl TrainerError {
	/// Shorthand for a [`TrainerError::Mismatch`].
	pub fn mismatch(what: impl Into<String>, expected: usize, found: usize) -> Self {
		Self::Mismatch { what: what.into(), expected, found }
	}

	/// Shorthand for a [`TrainerError::Io`].
	pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
		Self::Io { path: path.into(), source }
	}
}
