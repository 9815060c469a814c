//! Shared PKI: JPKI certificate profiles, CSR checks, CRLs, OCSP and CMS, sans-IO
