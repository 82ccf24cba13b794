variable "stage" {
  description = "Deployment stage (dev, staging, prod); prefixes every queue and topic, as queues.prefix = \"dss-{stage}-\"."
  type        = string
  validation {
    # The search domain is named dss-{stage}-search: at most 28 lower-case letters, digits and '-'.
    condition     = can(regex("^[a-z0-9-]{1,17}$", var.stage))
    error_message = "stage: at most 17 lower-case letters, digits and '-' (the search domain's name, dss-{stage}-search, has at most 28 characters)."
  }
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
  description = "The VPC of the metadata database and the search cluster."
  type        = string
}

variable "database_subnet_ids" {
  description = "Private subnets (two zones at least) of the metadata database and the search cluster."
  type        = list(string)
}

variable "database_client_cidrs" {
  description = "Address ranges of the hosts that run DSS components (the only clients of the metadata database and the search cluster)."
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

variable "search_engine_version" {
  description = "Engine of the search cluster (OpenSearch 1–3 and Elasticsearch 7 are supported)."
  type        = string
  default     = "OpenSearch_2.19"
}

variable "search_instance_type" {
  description = "Instance type of the search cluster's data nodes."
  type        = string
  default     = "r6g.large.search"
}

variable "search_instance_count" {
  description = "Data nodes of the search cluster; two or more spread over two zones (in the first two of database_subnet_ids)."
  type        = number
  default     = 2
}

variable "search_volume_gb" {
  description = "Storage per data node of the search cluster (~10 KiB per bundle document, plus replicas)."
  type        = number
  default     = 100
}
