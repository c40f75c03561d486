//! `brokerguard demo`: the agent against the built-in simulator, offline.
