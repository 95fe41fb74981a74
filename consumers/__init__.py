"""Message sources: Kafka consumer, file/Kafka replay, schema validation and dead-lettering."""
