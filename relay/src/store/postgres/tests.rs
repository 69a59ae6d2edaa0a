//! Backend tests against a real PostgreSQL.
