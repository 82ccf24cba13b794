variable "stage" {
  description = "Deployment stage (dev, staging, prod); prefixes every topic and subscription, as queues.prefix = \"dss-{stage}-\"."
  type        = string
}

variable "project" {
  description = "Google Cloud project (gcp.project)."
  type        = string
}

variable "region" {
  description = "Location of the buckets."
  type        = string
  default     = "US-CENTRAL1"
}

variable "replicas" {
  description = "Replica name => main bucket name (replicas.<name>.url = \"gs://<bucket>\"); each also gets <bucket>-checkout."
  type        = map(string)
}

variable "pubsub_queues" {
  description = "Whether the daemons' queues live on Pub/Sub too (queues.backend = \"pubsub\"); otherwise only the GCS notifications and the event relay's subscription are created (the queues are elsewhere, e.g. SQS)."
  type        = bool
  default     = false
}

variable "max_receive_counts" {
  description = "Overrides of the receives before a queue's messages are dead-lettered (default: infra/resources.json)."
  type        = map(number)
  default     = {}
}

variable "network" {
  description = "Self link of the VPC network whose hosts run DSS components (the metadata database gets a private address there; the network needs private services access)."
  type        = string
}

variable "database_region" {
  description = "Region of the metadata database (near the components)."
  type        = string
  default     = "us-central1"
}

variable "database_tier" {
  description = "Cloud SQL machine tier of the metadata database."
  type        = string
  default     = "db-custom-2-7680"
}

variable "database_high_availability" {
  description = "A standby in a second zone (REGIONAL availability)."
  type        = bool
  default     = true
}
