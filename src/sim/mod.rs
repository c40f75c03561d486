//! A loopback fake broker with a fault script, for tests, benchmarks and the demo.
