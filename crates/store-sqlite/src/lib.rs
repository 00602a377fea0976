//! store-sqlite (being written)
