//! End-to-end runs against the Microsoft 365 simulator (added once its API exists).
