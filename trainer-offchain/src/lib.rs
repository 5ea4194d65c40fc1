//! trainchain-trainer library.
