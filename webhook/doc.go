// Package webhook is the HTTP edge for Stream: it reads a webhook's raw body
// under size limits, gunzips it, checks its signature against the secret of
// the API key that sent it, parses the Stream event, and hands the verified
// delivery to the audit log, answering only after the record is durable.
//
// Webhook imports policy types and nothing else of ours; it declares the
// small interfaces it needs (AuditLog) and cmd wires the implementations.
package webhook
