// stub: replaced by the real implementation
