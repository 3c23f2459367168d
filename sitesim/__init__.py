"""The site simulator: honest, independent peers of LinkRay (OCPP 1.6J chargers, a Modbus grid
meter, a CSMS) for the closed-loop tests, `make demo` and the benchmarks. See README.md."""
