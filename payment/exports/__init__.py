"""CSV exports for accountants: streamed in keyset batches, spreadsheet-safe, audited."""
