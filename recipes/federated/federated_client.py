"""The ClientApp: trains the round's global model on this client's partition and sends the weights back.

Everything it needs comes with the message: the run's argument list (``recipe-args``, from which the process builds
the recipe's data and model once) and the global round; the partition id comes from the SuperNode's node config
(``partition-id`` / ``num-partitions``, set by the simulation runtime or by ``flower-supernode --node-config``).
Under client-side DP the update is clipped by Flower's ``fixedclipping_mod`` before it leaves the client.
"""

import logging

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.clientapp.mod import fixedclipping_mod
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from federated_task import task_for

logger = logging.getLogger("flwr").getChild(__name__)  # Flower's handlers: the lines reach `flwr run --stream` too

app = ClientApp()


class InjectedClientFailure(RuntimeError):
    """Raised by the partitions named in ``--fail_partitions``, to exercise the server's fault handling."""


def local_training(message: Message, context: Context) -> Message:
    config = message.content["config"]
    task = task_for(str(config["recipe-args"]))
    partition_id = int(context.node_config["partition-id"])
    partitions = int(context.node_config.get("num-partitions", task.federated.num_clients))
    if partitions != task.federated.num_clients:
        raise ValueError(
            f"this SuperNode is one of num-partitions={partitions}, but the run has --num_clients {task.federated.num_clients}"
        )
    if partition_id in task.federated.failing_partitions:
        raise InjectedClientFailure(f"partition {partition_id} is in --fail_partitions")
    weights, metrics = task.train_client(partition_id, message.content["arrays"].to_torch_state_dict(), int(config["global-round"]))
    logger.info("client %d, round %s: %d examples, train loss %.4f", partition_id, config["global-round"], metrics["num-examples"], metrics["train-loss"])
    return Message(RecordDict({"arrays": ArrayRecord(weights), "metrics": MetricRecord(metrics)}), reply_to=message)


@app.train()
def train(message: Message, context: Context) -> Message:
    if KEY_CLIPPING_NORM in message.content["config"]:  # DifferentialPrivacyClientSideFixedClipping asks for it
        return fixedclipping_mod(message, context, local_training)
    return local_training(message, context)
