//! Relying party: verify signatures and certificate status
