"""The topic contract: which topics exist, the typed records on them, their Avro wire format and evolution."""
