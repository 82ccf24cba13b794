# The Google Cloud resources of one DSS deployment, named from infra/resources.json (the
# description `dss infra local` creates on the emulators): for every replica a main bucket whose
# object finalisations and deletions notify the GCS events topic, and its checkout bucket; the
# event relay's queue (topic, subscription to the events topic, dead-letter topic and
# subscription); with pubsub_queues, every daemon queue as topic + subscription (+ an "-events"
# subscription to the bucket events topic for those that read bucket events) with its
# dead-letter topic and subscription.

locals {
  resources = jsondecode(file("${path.module}/../../resources.json"))
  prefix    = "dss-${var.stage}-"
  dlq       = local.resources.dead_letter_suffix
  relay = {
    name              = local.resources.gcp.relay_queue
    max_receive_count = local.resources.gcp.relay_max_receive_count
  }
  queues = merge(
    var.pubsub_queues ? { for q in local.resources.queues : q.name => q } : {},
    { (local.relay.name) = { name = local.relay.name, bucket_events = false, max_receive_count = local.relay.max_receive_count } },
  )
  event_queues = {
    for name, q in local.queues : name => q
    if var.pubsub_queues && q.bucket_events && (name != "sync" || length(var.replicas) > 1)
  }
  buckets = merge(
    { for r, b in var.replicas : "${r}-main" => b },
    { for r, b in var.replicas : "${r}-checkout" => "${b}-checkout" },
  )
  # Pub/Sub's own dead-letter policy is a backstop: queues dead-letter at their own limit.
  attempts = { for name, q in local.queues : name => min(100, max(5, lookup(var.max_receive_counts, name, q.max_receive_count) + 2)) }
}

data "google_project" "this" {}

resource "google_storage_bucket" "bucket" {
  for_each                    = local.buckets
  name                        = each.value
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
}

resource "google_pubsub_topic" "gcs_events" {
  name = "${local.prefix}${local.resources.gcp.events_topic}"
}

# GCS publishes with its service agent.
data "google_storage_project_service_account" "gcs" {}

resource "google_pubsub_topic_iam_member" "gcs_publishes" {
  topic  = google_pubsub_topic.gcs_events.id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_notification" "main" {
  for_each       = var.replicas
  bucket         = google_storage_bucket.bucket["${each.key}-main"].name
  topic          = google_pubsub_topic.gcs_events.id
  payload_format = "JSON_API_V1"
  event_types    = ["OBJECT_FINALIZE", "OBJECT_DELETE"]
  depends_on     = [google_pubsub_topic_iam_member.gcs_publishes]
}

resource "google_pubsub_topic" "bucket_events" {
  count = var.pubsub_queues ? 1 : 0
  name  = "${local.prefix}${local.resources.bucket_events_topic}"
}

resource "google_pubsub_topic" "queue" {
  for_each = local.queues
  name     = "${local.prefix}${each.key}"
}

resource "google_pubsub_topic" "dead_letter" {
  for_each = local.queues
  name     = "${local.prefix}${each.key}${local.dlq}"
}

resource "google_pubsub_subscription" "dead_letter" {
  for_each                   = local.queues
  name                       = "${local.prefix}${each.key}${local.dlq}"
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "queue" {
  for_each                   = local.queues
  name                       = "${local.prefix}${each.key}"
  topic                      = google_pubsub_topic.queue[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = local.attempts[each.key]
  }
}

# Queues that read events pull a second subscription: to the bucket events topic, or (the
# relay) to the GCS events topic.
resource "google_pubsub_subscription" "events" {
  for_each                   = merge(local.event_queues, { (local.relay.name) = local.queues[local.relay.name] })
  name                       = "${local.prefix}${each.key}-events"
  topic                      = each.key == local.relay.name ? google_pubsub_topic.gcs_events.id : google_pubsub_topic.bucket_events[0].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = local.attempts[each.key]
  }
}

# Pub/Sub's service agent moves dead letters: it publishes to the dead-letter topics and
# acknowledges on the subscriptions.
locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic_iam_member" "dead_letter_publish" {
  for_each = local.queues
  topic    = google_pubsub_topic.dead_letter[each.key].id
  role     = "roles/pubsub.publisher"
  member   = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_ack" {
  for_each     = local.queues
  subscription = google_pubsub_subscription.queue[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
