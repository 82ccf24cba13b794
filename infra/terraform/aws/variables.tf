variable "stage" {
  description = "Deployment stage (dev, staging, prod); prefixes every queue and topic, as queues.prefix = \"dss-{stage}-\"."
  type        = string
}

variable "region" {
  description = "AWS region of every resource."
  type        = string
  default     = "us-east-1"
}

variable "replicas" {
  description = "Replica name => main bucket name (replicas.<name>.url = \"s3://<bucket>\"); each also gets <bucket>-checkout."
  type        = map(string)
}

variable "max_receive_counts" {
  description = "Overrides of the receives before a queue's messages are dead-lettered (default: infra/resources.json, which matches the default configuration)."
  type        = map(number)
  default     = {}
}
