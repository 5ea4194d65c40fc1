//! Signed extrinsics built from the runtime's own types.

use codec::Encode;
use sp_core::{sr25519, Pair, H256};
use sp_runtime::{generic::Era, MultiAddress, MultiSignature};
use trainchain_runtime::{AccountId, Runtime, RuntimeCall, TxExtension, UncheckedExtrinsic};

/// An immortal extrinsic from `signer` with `nonce` and no tip.
pub fn signed(
	signer: &sr25519::Pair,
	call: RuntimeCall,
	nonce: u32,
	genesis: H256,
	spec_version: u32,
	transaction_version: u32,
) -> UncheckedExtrinsic {
	let tx_ext: TxExtension = (
		frame_system::CheckNonZeroSender::<Runtime>::new(),
		frame_system::CheckSpecVersion::<Runtime>::new(),
		frame_system::CheckTxVersion::<Runtime>::new(),
		frame_system::CheckGenesis::<Runtime>::new(),
		frame_system::CheckEra::<Runtime>::from(Era::Immortal),
		frame_system::CheckNonce::<Runtime>::from(nonce),
		frame_system::CheckWeight::<Runtime>::new(),
		pallet_transaction_payment::ChargeTransactionPayment::<Runtime>::from(0),
	);
	// What the extensions add to the signed payload without putting it in the extrinsic.
	let implicit = ((), spec_version, transaction_version, genesis, genesis, (), (), ());
	let payload = sp_runtime::generic::SignedPayload::<RuntimeCall, TxExtension>::from_raw(
		call.clone(),
		tx_ext.clone(),
		implicit,
	);
	let signature = payload.using_encoded(|bytes| signer.sign(bytes));
	let who: AccountId = signer.public().into();
	UncheckedExtrinsic::new_signed(
		call,
		MultiAddress::Id(who),
		MultiSignature::Sr25519(signature),
		tx_ext,
	)
}
