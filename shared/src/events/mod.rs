//! Product events: the ingest v1 contract (types, parsing, validation, signatures).
