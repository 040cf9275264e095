"""The time engine: wall clocks and DST policies, cron, dependency chains, Job names. Pure; imports
only `sundial.api`."""
