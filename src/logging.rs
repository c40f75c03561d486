//! Logging for a terminal or for journald (priority prefixes, no timestamps).
