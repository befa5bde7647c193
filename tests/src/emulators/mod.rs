//! Provider emulators built to the providers' documented behaviour (product parts, held to
//! `../shared/docs/provider-semantics.md`), served over HTTP on loopback.

pub mod google;
pub mod graph;
