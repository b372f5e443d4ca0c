//! The financial-profile model shared by every fzip crate.
//!
//! - [`Decimal`]: exact money, kept as written.
//! - [`Extras`]: unknown keys, kept verbatim.
//! - The entities ([`Account`], [`Transaction`], [`Category`], [`FileMap`], [`TransactionFile`],
//!   [`AnalyticsRecord`]) with HouseF3's exact JSON keys and enum strings.
//! - [`Entity`]: what the package and store layers need from each of them.
//! - [`transaction_hash`]: HouseF3's `transactionHash`.
//! - [`housef3_compat`]: values fzip keeps that HouseF3's own models would refuse.
//!
//! No I/O happens here.
#![forbid(unsafe_code)]

mod decimal;
mod entities;
mod extras;
mod hash;
pub mod housef3_compat;
mod kind;
mod macros;
pub mod validate;

pub use decimal::{Decimal, DecimalError, DecimalParts};
pub use entities::*;
pub use extras::{Extras, RawJson};
pub use hash::transaction_hash;
pub use kind::{EXPORT_DERIVED_KEYS, Entity, EntityCounts, EntityKind};
pub use validate::{SchemaIssue, is_uuid};
