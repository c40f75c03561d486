//! Broker adapters. The only place that knows the list of brokers.
