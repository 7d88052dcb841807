"""The Telegram bot (aiogram 3): voice answers onto Kafka, feedback back to learners. Imports only the core."""
