"""Event-driven workers, one per market role, talking only through the chain and IPFS."""
