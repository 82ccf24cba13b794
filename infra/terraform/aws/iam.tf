# One role per component, allowed only what it does: its own queues (receive, delete, change
# visibility, send for retries and dead letters), and the buckets it reads or writes.

locals {
  main_arns     = [for r, b in var.replicas : aws_s3_bucket.bucket["${r}-main"].arn]
  checkout_arns = [for r, b in var.replicas : aws_s3_bucket.bucket["${r}-checkout"].arn]
  components = {
    api = {
      queues     = ["ingest", "checkout"]
      read       = concat(local.main_arns, local.checkout_arns)
      write      = concat(local.main_arns, local.checkout_arns)
      staging    = true
      any_bucket = false
    }
    index = {
      queues     = ["index"]
      read       = local.main_arns
      write      = []
      staging    = false
      any_bucket = false
    }
    notify = {
      queues     = ["notify", "notify-deliveries"]
      read       = local.main_arns
      write      = []
      staging    = false
      any_bucket = false
    }
    # Checkout destinations are user-named buckets of the account.
    checkout = {
      queues     = ["checkout", "checkout-mail"]
      read       = concat(local.main_arns, local.checkout_arns)
      write      = local.checkout_arns
      staging    = false
      any_bucket = true
    }
    sync = {
      queues     = ["sync"]
      read       = local.main_arns
      write      = local.main_arns
      staging    = false
      any_bucket = false
    }
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "component" {
  for_each           = local.components
  name               = "${local.prefix}${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "component" {
  for_each = local.components
  statement {
    sid = "OwnQueues"
    actions = [
      "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:SendMessage",
      "sqs:GetQueueUrl", "sqs:GetQueueAttributes",
    ]
    resources = flatten([
      for q in each.value.queues : [aws_sqs_queue.queue[q].arn, aws_sqs_queue.dead_letter[q].arn]
    ])
  }
  dynamic "statement" {
    for_each = length(each.value.read) > 0 ? [1] : []
    content {
      sid       = "ReadBuckets"
      actions   = ["s3:GetObject", "s3:GetObjectTagging", "s3:ListBucket"]
      resources = concat(each.value.read, [for a in each.value.read : "${a}/*"])
    }
  }
  dynamic "statement" {
    for_each = length(each.value.write) > 0 ? [1] : []
    content {
      sid = "WriteBuckets"
      actions = [
        "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
      ]
      resources = [for a in each.value.write : "${a}/*"]
    }
  }
  dynamic "statement" {
    for_each = each.value.staging ? [1] : []
    content {
      sid       = "ReadStaging"
      actions   = ["s3:GetObject", "s3:GetObjectTagging"]
      resources = ["*"]
    }
  }
  dynamic "statement" {
    for_each = each.value.any_bucket ? [1] : []
    content {
      sid       = "CheckoutDestinations"
      actions   = ["s3:ListBucket", "s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "component" {
  for_each = local.components
  name     = "dss"
  role     = aws_iam_role.component[each.key].id
  policy   = data.aws_iam_policy_document.component[each.key].json
}
