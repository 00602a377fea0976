//! store-postgres (being written)
