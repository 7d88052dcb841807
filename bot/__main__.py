"""`python -m bot`: run the Telegram bot with the settings from the environment."""

from bot.app import main

main()
