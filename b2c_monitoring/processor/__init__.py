"""The processor process: its composition root.

``process.serve`` migrates, starts maintenance and alerting, the derivation workers
(``workers``: one OS process each, so derivation uses every core) and the OTLP gRPC
front of ``receivers``. The pure derivation the workers run is ``processors``; this
package is the process that runs it, and the only one that wires receivers, storage
and alerting together.
"""
