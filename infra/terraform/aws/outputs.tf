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
