//! Authority core: issuance and revocation logic over an injected registry, signer and clock
