"""Queue servers (ACD): call queues, agents and their states, strategies."""
