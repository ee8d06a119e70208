"""CRM write-back and pull: leadscore's scores onto CRM records, sales statuses back.

``sync`` holds what every CRM shares (the values a lead's latest state sends, what
changed since the last send, the checkpoint, turning pulled statuses into dispositions);
``hubspot`` and ``salesforce`` talk to one CRM each through its official client.

The lead id in the store *is* the CRM record id (a HubSpot contact id, a Salesforce
Lead id): the ids a CRM export or the scoring data carries. A lead the CRM does not have
is reported, never created.
"""
