# One service account per component, allowed only what it does: its own subscriptions and
# topics, and the buckets it reads or writes.

locals {
  main_buckets     = [for r, b in var.replicas : google_storage_bucket.bucket["${r}-main"].name]
  checkout_buckets = [for r, b in var.replicas : google_storage_bucket.bucket["${r}-checkout"].name]
  components = {
    api         = { queues = ["ingest", "checkout"], read = concat(local.main_buckets, local.checkout_buckets), write = concat(local.main_buckets, local.checkout_buckets) }
    index       = { queues = ["index"], read = local.main_buckets, write = [] }
    notify      = { queues = ["notify", "notify-deliveries"], read = local.main_buckets, write = [] }
    checkout    = { queues = ["checkout", "checkout-mail"], read = concat(local.main_buckets, local.checkout_buckets), write = local.checkout_buckets }
    sync        = { queues = ["sync"], read = local.main_buckets, write = local.main_buckets }
    event-relay = { queues = [local.relay.name], read = [], write = [] }
  }
  grants = flatten([
    for c, v in local.components : [
      for q in v.queues : { component = c, queue = q } if contains(keys(local.queues), q)
    ]
  ])
  reads = flatten([
    for c, v in local.components : [for b in v.read : { component = c, bucket = b }]
  ])
  writes = flatten([
    for c, v in local.components : [for b in v.write : { component = c, bucket = b }]
  ])
}

resource "google_service_account" "component" {
  for_each     = local.components
  account_id   = substr("dss-${var.stage}-${each.key}", 0, 30)
  display_name = "DSS ${var.stage} ${each.key}"
}

resource "google_pubsub_subscription_iam_member" "own_queue" {
  for_each     = { for g in local.grants : "${g.component}/${g.queue}" => g }
  subscription = google_pubsub_subscription.queue[each.value.queue].id
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.component[each.value.component].email}"
}

resource "google_pubsub_topic_iam_member" "own_queue" {
  for_each = { for g in local.grants : "${g.component}/${g.queue}" => g }
  topic    = google_pubsub_topic.queue[each.value.queue].id
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.component[each.value.component].email}"
}

resource "google_pubsub_topic_iam_member" "own_dead_letters" {
  for_each = { for g in local.grants : "${g.component}/${g.queue}" => g }
  topic    = google_pubsub_topic.dead_letter[each.value.queue].id
  role     = "roles/pubsub.publisher"
  member   = "serviceAccount:${google_service_account.component[each.value.component].email}"
}

resource "google_storage_bucket_iam_member" "read" {
  for_each = { for g in local.reads : "${g.component}/${g.bucket}" => g }
  bucket   = each.value.bucket
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${google_service_account.component[each.value.component].email}"
}

resource "google_storage_bucket_iam_member" "write" {
  for_each = { for g in local.writes : "${g.component}/${g.bucket}" => g }
  bucket   = each.value.bucket
  role     = "roles/storage.objectAdmin"
  member   = "serviceAccount:${google_service_account.component[each.value.component].email}"
}
