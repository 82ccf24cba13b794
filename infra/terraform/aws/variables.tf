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

variable "vpc_id" {
  description = "The VPC of the metadata database."
  type        = string
}

variable "database_subnet_ids" {
  description = "Private subnets (two zones at least) of the metadata database."
  type        = list(string)
}

variable "database_client_cidrs" {
  description = "Address ranges of the hosts that run DSS components (the only clients of the metadata database)."
  type        = list(string)
}

variable "database_instance_class" {
  description = "RDS instance class of the metadata database."
  type        = string
  default     = "db.t4g.medium"
}

variable "database_storage_gb" {
  description = "Initial storage of the metadata database (grows to four times this)."
  type        = number
  default     = 50
}

variable "database_multi_az" {
  description = "A standby in a second zone (failover in a minute or two)."
  type        = bool
  default     = true
}
