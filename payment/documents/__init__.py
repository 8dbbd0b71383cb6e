"""Tax documents: Thai tax invoices/receipts and credit notes, numbered gap-free, rendered to PDF, kept immutable."""
