//! Verify Client Federation (ARCHITECTURE §9).
