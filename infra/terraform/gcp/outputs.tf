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

output "metadata_connection_name" {
  description = "The instance the Cloud SQL Auth Proxy beside each component connects to (Cloud SQL's server certificates name the instance, not its address, so components reach it through the proxy)."
  value       = google_sql_database_instance.metadata.connection_name
}

output "metadata_url" {
  description = "The metadata.url of the deployment's configuration, through the Cloud SQL Auth Proxy on the component's host (the password comes from PGPASSWORD, read from metadata_password_secret)."
  value       = "postgres://dss@127.0.0.1:5432/dss?sslmode=disable"
}

output "metadata_password_secret" {
  description = "Secret Manager secret holding the metadata database's password."
  value       = google_secret_manager_secret.metadata_password.id
}
