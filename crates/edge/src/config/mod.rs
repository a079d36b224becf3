//! The configuration: a plain-data model and its TOML parser.
