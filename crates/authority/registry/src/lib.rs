//! Authority registry: storage trait with SQLite and PostgreSQL back ends
