output "queues_prefix" {
  description = "The queues.prefix of the deployment's configuration."
  value       = local.prefix
}

output "bucket_events_topic_arn" {
  description = "The topic the main buckets notify."
  value       = aws_sns_topic.bucket_events.arn
}

output "component_roles" {
  description = "Component => IAM role ARN to run it as."
  value       = { for k, r in aws_iam_role.component : k => r.arn }
}

output "metadata_url" {
  description = "The metadata.url of the deployment's configuration (the password comes from PGPASSWORD, read from metadata_password_secret)."
  value       = "postgres://dss@${aws_db_instance.metadata.address}:${aws_db_instance.metadata.port}/dss?sslmode=require"
}

output "metadata_password_secret" {
  description = "Secrets Manager secret holding the metadata database's password (JSON, key \"password\")."
  value       = aws_db_instance.metadata.master_user_secret[0].secret_arn
}

output "search_url" {
  description = "The search.url of the deployment's configuration; set search.aws_sigv4 = true (the components' roles sign their requests)."
  value       = "https://${aws_opensearch_domain.search.endpoint}"
}
