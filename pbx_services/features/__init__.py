"""Feature codes answered on the IVR servers: call forwarding and do-not-disturb from the phone."""
