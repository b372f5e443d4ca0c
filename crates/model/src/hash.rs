//! HouseF3's `transactionHash`, for deduplication against HouseF3 data.
//!
//! `sha256("{accountId}|{date}|{normalized amount}|{description}")`, first 16 hex digits read as
//! an unsigned 64-bit number, where the amount is Python's `str(Decimal(amount).normalize())`
//! (`backend/src/utils/transaction_utils.py:14-37`). HouseF3 sets it only when the transaction
//! has a currency.

use sha2::{Digest, Sha256};

use crate::Decimal;

/// HouseF3's transaction hash.
pub fn transaction_hash(account_id: &str, date: i64, amount: &Decimal, description: &str) -> u64 {
    let text = format!(
        "{account_id}|{date}|{}|{description}",
        amount.python_normalized()
    );
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_housef3_test_vectors() {
        // From shared/fixtures/housef3/small/expected.json `interopHints`.
        let vectors = [
            (
                "e633081f-a7ca-4ba9-b18a-98cf35ef27eb",
                1672531200000,
                "-1450.00",
                "Loyer Appartement \u{2014} Virement SEPA",
                14431864278854774985u64,
            ),
            (
                "e633081f-a7ca-4ba9-b18a-98cf35ef27eb",
                1674345600000,
                "-1180.00",
                "Miete Wohnung M\u{fc}llerstra\u{df}e 12",
                17084751418674567549,
            ),
            (
                "e633081f-a7ca-4ba9-b18a-98cf35ef27eb",
                1672531200000,
                "-8.51",
                "AMAZON MKTPLACE PMTS, \"GIFT\" AMZN.CO.UK",
                12964407100991310260,
            ),
            (
                "e633081f-a7ca-4ba9-b18a-98cf35ef27eb",
                1672531200000,
                "-16.89",
                "Caf\u{e9} de Flore Paris",
                797660870161191895,
            ),
        ];
        for (account, date, amount, description, want) in vectors {
            let amount = Decimal::parse(amount).unwrap();
            assert_eq!(transaction_hash(account, date, &amount, description), want);
        }
    }
}
