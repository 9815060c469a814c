//! Authority HTTP adapter (axum): CA endpoints, CRLs, OCSP
