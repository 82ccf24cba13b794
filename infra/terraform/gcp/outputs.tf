output "queues_prefix" {
  description = "The queues.prefix of the deployment's configuration."
  value       = local.prefix
}

output "gcs_events_topic" {
  description = "The gcp.events_topic of the deployment's configuration."
  value       = google_pubsub_topic.gcs_events.name
}

output "component_service_accounts" {
  description = "Component => service account to run it as."
  value       = { for k, a in google_service_account.component : k => a.email }
}
