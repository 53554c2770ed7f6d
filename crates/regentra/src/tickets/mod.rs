//! The helpdesk domain: clients, contacts, tickets, entries and their lifecycle rules.
