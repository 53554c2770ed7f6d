//! The Teams page (`/_sim/teams`) — filled in with the page itself.
