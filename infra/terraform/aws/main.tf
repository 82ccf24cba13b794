# The AWS resources of one DSS deployment, named from infra/resources.json (the description
# `dss infra local` creates on the local emulators): for every replica a main bucket whose object
# events notify the bucket events topic, and its checkout bucket; the topic; for every daemon queue
# an SQS queue with its dead-letter queue and redrive policy; raw-delivery subscriptions of the
# queues that read bucket events. The metadata database is in database.tf.

locals {
  resources = jsondecode(file("${path.module}/../../resources.json"))
  prefix    = "dss-${var.stage}-"
  queues    = { for q in local.resources.queues : q.name => q }
  event_queues = {
    for name, q in local.queues : name => q
    # Sync reads bucket events only when there is something to replicate.
    if q.bucket_events && (name != "sync" || length(var.replicas) > 1)
  }
  buckets = merge(
    { for r, b in var.replicas : "${r}-main" => b },
    { for r, b in var.replicas : "${r}-checkout" => "${b}-checkout" },
  )
}

resource "aws_s3_bucket" "bucket" {
  for_each = local.buckets
  bucket   = each.value
}

resource "aws_s3_bucket_public_access_block" "bucket" {
  for_each                = aws_s3_bucket.bucket
  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_sns_topic" "bucket_events" {
  name = "${local.prefix}${local.resources.bucket_events_topic}"
}

data "aws_iam_policy_document" "bucket_events_publish" {
  statement {
    actions   = ["SNS:Publish"]
    resources = [aws_sns_topic.bucket_events.arn]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [for r, b in var.replicas : aws_s3_bucket.bucket["${r}-main"].arn]
    }
  }
}

resource "aws_sns_topic_policy" "bucket_events" {
  arn    = aws_sns_topic.bucket_events.arn
  policy = data.aws_iam_policy_document.bucket_events_publish.json
}

resource "aws_s3_bucket_notification" "main" {
  for_each = var.replicas
  bucket   = aws_s3_bucket.bucket["${each.key}-main"].id
  topic {
    id        = "dss-bucket-events"
    topic_arn = aws_sns_topic.bucket_events.arn
    events    = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
  }
  depends_on = [aws_sns_topic_policy.bucket_events]
}

resource "aws_sqs_queue" "dead_letter" {
  for_each                  = local.queues
  name                      = "${local.prefix}${each.key}${local.resources.dead_letter_suffix}"
  message_retention_seconds = 1209600
}

resource "aws_sqs_queue" "queue" {
  for_each                  = local.queues
  name                      = "${local.prefix}${each.key}"
  message_retention_seconds = 1209600
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dead_letter[each.key].arn
    maxReceiveCount     = lookup(var.max_receive_counts, each.key, each.value.max_receive_count)
  })
}

data "aws_iam_policy_document" "queue_from_topic" {
  for_each = local.event_queues
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.queue[each.key].arn]
    principals {
      type        = "Service"
      identifiers = ["sns.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_sns_topic.bucket_events.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "queue_from_topic" {
  for_each  = local.event_queues
  queue_url = aws_sqs_queue.queue[each.key].id
  policy    = data.aws_iam_policy_document.queue_from_topic[each.key].json
}

resource "aws_sns_topic_subscription" "queue" {
  for_each             = local.event_queues
  topic_arn            = aws_sns_topic.bucket_events.arn
  protocol             = "sqs"
  endpoint             = aws_sqs_queue.queue[each.key].arn
  raw_message_delivery = true
  depends_on           = [aws_sqs_queue_policy.queue_from_topic]
}
