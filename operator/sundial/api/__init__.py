"""The API: the ScheduledDeployment's models, the CRD and reference generated from them, reasons,
conditions and the trigger annotation's format. Pure; imports nothing else of Sundial's."""
