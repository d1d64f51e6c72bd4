//! Certificate generation for the demo and tests.
