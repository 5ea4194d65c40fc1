//! trainchain-trainer library: the ML core of a trainchain contributor.
//!
//! # Public API for the p2p and chain code
//!
//! | what | item |
//! | --- | --- |
//! | model spec | [`model::ModelSpec`]: `parse("mlp:64-32-10@seed")` or `parse("gpt:256-64-2-4-64@seed")`, `lm_context(&str)`, `is_lm()`, `resolve("mlp", features, classes)`, `canonical_bytes()`, `commitment() -> Result<[u8; 32]>`, `initial_params()`, `num_params()` |
//! | model | [`model::Model`]: `new(&spec)`, `from_flat(&spec, &[f32])`, `flat_params() -> Result<Vec<f32>>`, `set_flat_params(&[f32]) -> Result<()>`, `num_params()`, `forward(&Tensor)`, `batch_loss(&xs, &ys) -> (loss, logits, targets)` (every arch), `try_clone()` |
//! | language model | [`gpt`]: `forward_tokens(&Model, &ids)`, `sample(&Model, &prompt, n, Sampling)`; [`corpus::generate`]`(seed, min_bytes)` |
//! | updates | [`update::encode`]`(&[f32]) -> Vec<u8>`, [`update::decode`]`(&[u8]) -> Result<Vec<f32>>`, [`update::decode_expected`], [`update::validate`], [`update::hash`]`(&[f32]) -> [u8; 32]`, [`update::apply_update`]`(&mut Model, &[f32])`, [`update::weighted_average`] |
//! | model state | [`update::encode_state`], [`update::decode_state`], [`update::state_hash`], [`update::model_state_hash`]`(&Model) -> Result<[u8; 32]>` |
//! | training | [`train::local_round`]`(&mut Model, &Dataset, &TrainConfig, seed) -> Result<RoundOutput { update, loss, samples, steps }>`, [`train::fit`], [`train::Schedule`] (warm-up + cosine) |
//! | evaluation | [`eval::evaluate`]`(&Model, &Dataset) -> Result<Metrics { loss, accuracy, samples }>`, `Metrics::perplexity()` (per token for a gpt) |
//! | data | [`data::load_csv`], [`data::load_idx`], [`data::load_text`], [`data::load_text_split`], [`data::text_dataset`], [`shard::load_data`], [`data::gaussian_blobs`], [`data::shard_iid`], [`data::shard_label_skew`] |
//! | checkpoints | [`checkpoint::save`], [`checkpoint::load`], [`checkpoint::read_spec`] (safetensors); [`checkpoint::save_with`] / [`checkpoint::load_with`] also carry the input standardisation, [`checkpoint::save_all`] / [`checkpoint::load_all`] the outer optimiser state too (`run --out` / `--resume`), [`checkpoint::save_resumable`] / [`checkpoint::load_inner`] a contributor's kept inner optimiser state ([`train::InnerSnapshot`]) |
//! | inputs | [`standardize::Standardizer`]`::fit(&Dataset, Scope)`, `apply(&Dataset)`; a job's fixed transform [`standardize::InputTransform`] (`input=` in its metadata); [`convergence::check_learned`] (did `train` learn?) |
//! | simulation | [`fedavg::simulate`] |
//!
//! Formats (see the modules for details):
//! * flat parameter order = declared order of [`model`] (`fc0.weight`, `fc0.bias`, ...),
//!   dense weights stored `[in, out]`;
//! * update bytes = `b"TCU1"` ‖ `u32 LE n` ‖ `n × f32 LE`; state bytes = `b"TCM1"` ‖ same;
//! * `update_hash = blake2_256(update bytes)`, `model_hash = blake2_256(state bytes)`;
//! * `model_commitment = blake2_256(spec canonical bytes ‖ state bytes of the initial model)`,
//!   spec canonical bytes = `b"trainchain/model-spec/v1"` ‖ SCALE(arch) ‖ `u64 LE seed`.
//!
//! All fallible functions return [`error::TrainerError`]; bad input (files, labels, sizes,
//! NaN/inf) is an error, never a panic.

pub mod adamw;
pub mod aggregate;
pub mod bmm;
pub mod checkpoint;
pub mod compress;
pub mod convergence;
pub mod corpus;
pub mod data;
pub mod digest;
pub mod error;
pub mod eval;
pub mod fastmath;
pub mod fedavg;
pub mod gpt;
pub mod gpt_ops;
#[cfg(feature = "chain")]
pub mod job;
pub mod matmul;
pub mod model;
pub mod ops;
pub mod outer;
pub mod p2p;
pub mod par;
pub mod plan;
pub mod public_data;
pub mod rng;
pub mod score;
pub mod shard;
pub mod signing;
pub mod standardize;
pub mod train;
pub mod tuning;
pub mod update;
#[cfg(feature = "chain")]
pub mod verify;

pub use error::{Result, TrainerError};
pub use model::{Model, ModelSpec};
